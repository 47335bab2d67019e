"""A local web demo of the toolkit (``stylegan-lightning serve``): invert, edit and compress a face photo in the
browser.

- :mod:`.arguments`: the ``serve`` options (light: no torch, no Gradio import).
- :mod:`.models`: which models the demo offers (the shipped demo models, or a user's from ``--config``), loaded
  once and shared by every visitor.
- :mod:`.actions`: what each button does, as plain functions over those models (align, invert, edit, compress,
  decode); no web code, so they are tested without a browser.
- :mod:`.app`: the Gradio page over the actions.
- :mod:`.tools`: the ``serve`` tool: a private temporary folder, offline settings, launching on this machine only.
"""
