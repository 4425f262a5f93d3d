"""MLflow model registry: registration with lineage, the promotion policy, aliases, listing.

Modules: :mod:`.registration` (:func:`register_model`), :mod:`.promotion` (the policy and
:func:`promote`), :mod:`.listing` (:func:`list_models`, :func:`resolve_model`), :mod:`.versions`
(aliases, tags, versions and the per-model lock), :mod:`.pyfunc` (the ``python_function`` model),
:mod:`.samples` (per-test-sample results: reading, downloading, aligning).

- :func:`register_model` logs a fine-tuned model directory (``models/finetune/<task>/model``) as
  a ``python_function`` model (:mod:`s2ssl.registry.pyfunc`: explicit tensor signature, input
  example, explicit pip requirements, the ``s2ssl`` code shipped with it) in one MLflow run of
  stage ``register``, and registers it as ``<prefix>-<task>``. It is **idempotent**: the model's
  hash (:func:`model_hash`, weights + architecture) is a version tag, and a hash that is already
  registered is not registered again. A new version gets the alias ``challenger`` and lineage
  tags: git commit, the ``dvc.lock`` hashes of the fine-tuning stage's data, code, encoders and
  params, the pre-training method (init), the test set fingerprint and the test metrics.
- :func:`should_promote` is the **pure** promotion policy (``register.promote`` in params): the
  challenger wins only when the lower bound of a paired bootstrap interval over the test samples
  (:mod:`.samples`: the per-sample confusion matrices registered with each version) of its gain
  in the metric exceeds ``min_improvement``.
- :func:`promote` applies it to the ``challenger`` (or a given version) against the
  ``champion``, moves ``champion`` only when it holds, and records the decision and its reason
  as version tags. Promotions of one model are serialised by a lock (a file lock next to a
  sqlite store; on a tracking server, one lock per machine) and re-read the aliases inside it,
  so concurrent promotions cannot both win against a stale champion; an alias names exactly
  one version, so there is never more than one champion.
- :func:`list_models` is what ``s2ssl models`` shows; :func:`download_model` resolves a
  ``models:/`` (or ``runs:/``) URI to the fine-tuned model directory for ``s2ssl predict``.

Aliases only (``champion`` / ``challenger``), never the deprecated stages.
"""
