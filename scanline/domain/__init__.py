"""Pure domain logic: rules and computations with no I/O, unit-tested with fakes."""
