"""imagine-bot on Discord: thin adapters that parse, call one use case of ``bot``, and render.

``core`` is what every feature shares; each other package is one feature with a
``setup(bot, services, reporter)``, loaded by name (``FEATURES``) by the composition root,
``cogs.main``.
"""

FEATURES = ("cogs.imagine", "cogs.budget")
