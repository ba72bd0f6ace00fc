"""Small analysis apps used by the examples and the documentation."""
