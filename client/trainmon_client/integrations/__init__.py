"""Integrations with training frameworks: one line in the framework's own hook list
publishes its training to ``trainmon watch``. Each is a module of its own, imported
by name (nothing here imports a framework, nor does ``import trainmon_client``):

- ``trainmon_client.integrations.transformers``: ``TrainmonCallback``, for the Hugging
  Face ``Trainer`` (``Trainer(..., callbacks=[TrainmonCallback()])``).
- ``trainmon_client.integrations.lightning``: ``TrainmonLogger``, for Lightning
  (``Trainer(logger=TrainmonLogger())``).
- ``trainmon_client.integrations.keras``: ``TrainmonCallback``, for Keras 3
  (``model.fit(..., callbacks=[TrainmonCallback()])``).

Code written for TensorBoard switches with one import: ``trainmon_client.tensorboard``.
Importing an integration without its framework installed raises ImportError saying what
to install.
"""
