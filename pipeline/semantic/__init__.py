"""Stage one, text side: class names and descriptions to sentence vectors.

Owns ``text_encoder.py`` (the only sentence-transformers import) and ``embed.py`` (``smie embed-labels``).
May import ``smie.features``, ``smie.pipeline.data``, ``smie.pipeline.device`` and ``smie.prompts``
(templates, description files); never the visual side or stage two.
"""
