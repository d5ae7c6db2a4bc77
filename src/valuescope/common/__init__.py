"""Low-level helpers shared by every layer (stable seeds, quantity parsing); they import nothing
of valuescope above `errors`."""
