"""Saving and loading in Keras 3's formats (the public API is `rustkeras.saving` and the
models' `save`, `save_weights`, `load_weights`, `to_json`).

- `keras_config`: configs as Keras 3 writes them (`DTypePolicy` dicts, `module`,
  `registered_name`, `build_config`, `compile_config`) and reads them.
- `weights_h5`: the HDF5 weights layout (`layers/<path>/vars/<i>`, `optimizer/vars/<i>`).
- `archive`: the `.keras` zip (`config.json`, `metadata.json`, `model.weights.h5`).
- `legacy_h5`: Keras 2's `.h5` files, for reading.
- `files`: atomic writes (a crash during a save leaves the previous file whole).
"""
