"""Scanline's shared package: copied into every function's build by stack.yml's
``configuration.copy``, so each function imports it as the top-level ``scanline``."""
