"""Models-from-code entry point of a registered s2ssl model.

``s2ssl register`` logs this file as the ``python_model`` (MLflow's "models from code": no
cloudpickle); MLflow executes it when the model is loaded, with the shipped ``s2ssl`` code on
``sys.path``. Importing it from anywhere else only sets MLflow's current model.
"""

import mlflow.models

from s2ssl.registry.pyfunc import S2SSLPyfuncModel

mlflow.models.set_model(S2SSLPyfuncModel())
