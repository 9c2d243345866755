"""Drop-in replacements for other circuit-breaker libraries, running on fastbreaker's core.

- :mod:`fastbreaker.compat.pybreaker`: ``import fastbreaker.compat.pybreaker as pybreaker``
- :mod:`fastbreaker.compat.circuitbreaker`:
  ``from fastbreaker.compat.circuitbreaker import circuit``

Each module documents the differences it keeps on purpose.
"""
