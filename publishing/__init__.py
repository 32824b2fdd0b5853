"""Publishing: the orchestration above the trainer, the registry and the Triton repository.

``emb publish`` (:func:`publishing.publish.publish`) exports a run, checks parity, registers the generation
with its eval report and places it in the Triton repository. Nothing below this layer imports it; only
``cli`` does. Import the submodules (``publishing.publish``, ``publishing.eval_report``): this package's
``__init__`` imports nothing, so that ``import publishing`` stays free.
"""
