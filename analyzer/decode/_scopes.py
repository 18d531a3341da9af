"""Resources and scopes, interned once per batch and spread to the rows that share them,
and the Arrow map arrays of attributes."""

from __future__ import annotations

import pyarrow as pa

from ._identity import resolve_model

__all__ = ["Scopes", "attribute_maps", "flat_maps"]

_ATTRS = pa.map_(pa.string(), pa.string())


class Scopes:
    """Resources and scopes, stored once and spread to rows with a dictionary."""

    def __init__(self) -> None:
        self.res_keys: list[list[str]] = []
        self.res_vals: list[list[str]] = []
        self.res_found: list[dict[str, str]] = []
        self.res_url: list[str] = []
        self.scope_res: list[int] = []
        self.scope_name: list[str] = []
        self.scope_version: list[str] = []
        self.scope_keys: list[list[str]] = []
        self.scope_vals: list[list[str]] = []
        self.scope_url: list[str] = []
        self.scope_model: list[tuple[str | None, str | None]] = []

    def add_resource(self, keys: list[str], vals: list[str], url: str) -> int:
        self.res_keys.append(keys)
        self.res_vals.append(vals)
        self.res_found.append(dict(zip(keys, vals, strict=True)))
        self.res_url.append(url)
        return len(self.res_keys) - 1

    def add_scope(
        self, resource: int, name: str, version: str, keys: list[str], vals: list[str], url: str
    ) -> int:
        self.scope_res.append(resource)
        self.scope_name.append(name)
        self.scope_version.append(version)
        self.scope_keys.append(keys)
        self.scope_vals.append(vals)
        self.scope_url.append(url)
        self.scope_model.append(resolve_model(self.res_found[resource]))
        return len(self.scope_res) - 1

    def per_scope(self, scope_idx: pa.Array) -> dict[str, pa.Array]:
        """Scope- and resource-level columns, as dictionary arrays indexed by scope."""
        res = self.scope_res
        maps_res = attribute_maps([self.res_keys[r] for r in res], [self.res_vals[r] for r in res])
        maps_scope = attribute_maps(self.scope_keys, self.scope_vals)

        def strings(values: list[str]) -> pa.Array:
            return pa.array(values, pa.string())

        cols = {
            "ResourceAttributes": maps_res,
            "ScopeAttributes": maps_scope,
            "ServiceName": strings([self.res_found[r].get("service.name", "") for r in res]),
            "ServiceInstanceId": strings(
                [self.res_found[r].get("service.instance.id", "") for r in res]
            ),
            "Layout": strings([self.res_found[r].get("faultlens.layout", "") for r in res]),
            "ScopeName": strings(self.scope_name),
            "ScopeVersion": strings(self.scope_version),
            "ResourceSchemaUrl": strings([self.res_url[r] for r in res]),
            "ScopeSchemaUrl": strings(self.scope_url),
        }
        return {k: pa.DictionaryArray.from_arrays(scope_idx, v) for k, v in cols.items()}


def attribute_maps(keys: list[list[str]], vals: list[list[str]]) -> pa.Array:
    offsets = [0]
    flat_k: list[str] = []
    flat_v: list[str] = []
    for k, v in zip(keys, vals, strict=True):
        flat_k += k
        flat_v += v
        offsets.append(len(flat_k))
    return pa.MapArray.from_arrays(
        pa.array(offsets, pa.int32()), pa.array(flat_k, pa.string()), pa.array(flat_v, pa.string())
    )


def flat_maps(offsets: list[int], keys: list[str], vals: list[str]) -> pa.Array:
    return pa.MapArray.from_arrays(
        pa.array(offsets, pa.int32()), pa.array(keys, pa.string()), pa.array(vals, pa.string())
    )
