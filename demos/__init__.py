"""Gradio demos of msn_core: ``python -m demos.app`` (``make demo``).

Each tab is a small module wiring components to the public ``msn_core`` API:
``segment``, ``compare``, ``colourize``, ``about``; ``limits`` holds the caps a
public demo needs, ``common`` what the tabs share, ``annotate`` the first-frame tools.
"""
