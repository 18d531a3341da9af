"""The dashboard pages: one file each, with `render(con, filters)`."""
