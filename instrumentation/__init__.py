"""faultlens.instrumentation: model identity on every span and log record.

(The manual arrives with the instrumentation issue.)
"""

__all__: list[str] = []
