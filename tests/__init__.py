"""Test package (unique module names across folders)."""
