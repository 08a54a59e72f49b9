"""Human output: the only package that imports rich."""
