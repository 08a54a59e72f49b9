"""Benchmarks of ivmctl (issues #6 and #7): `python -m benchmarks`, see __main__."""
