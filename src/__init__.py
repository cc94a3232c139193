"""A checkout's historical entry points: ``python -m src.train`` and friends run profcast's commands.

The code lives in the ``profcast`` package (src/profcast); the wheel ships only that. These thin modules
keep the commands of the design card working from the project root of a checkout.
"""
