"""The forecast web page: drop a profile in a browser and see every instance ranked (docs/web.md).

``profcast web`` (``profcast web``, ``make web``) starts it; ``app`` builds the FastAPI app,
``uploads`` turns an uploaded profile into the same ``AnchorProfile`` the CLI reads, ``champions``
finds and keeps the models the page forecasts with, and ``page.html`` is the page itself.
"""
