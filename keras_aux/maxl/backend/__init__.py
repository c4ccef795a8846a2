"""One MAXL trainer per Keras backend, mixed into the backend-neutral
`keras_aux.maxl.MAXL` (as Keras builds ``keras.Model`` on
``keras/src/backend/<name>/trainer.py``). Only the one of the current backend
is imported (`keras_aux.maxl.model`)."""
