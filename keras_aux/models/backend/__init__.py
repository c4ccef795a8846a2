"""One trainer per Keras backend, on the backend-neutral
`keras_aux.models.base_trainer.BaseAuxiliaryTrainer` (as Keras builds
``keras.Model`` on ``keras/src/backend/<name>/trainer.py``). Only the one of
the current backend is imported (`keras_aux.models.auxiliary`)."""
