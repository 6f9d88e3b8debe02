"""Build-time tooling run from a checkout (`make schemas`, the tests); not part of the
installed package: nothing in the runtime packages imports it."""
