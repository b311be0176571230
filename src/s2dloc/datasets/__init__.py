"""Dataset readers, writers and generators (real formats and the synthetic world)."""
