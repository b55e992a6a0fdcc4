"""GGUF files: constants.py (the format's numbers, from the gguf package), reader.py
(open_gguf: our fast, defensive reader), writer.py (the one writer, for quantize and
convert_hf; import it from there: it is not needed to read)."""
from llmlite.gguf.constants import type_name
from llmlite.gguf.reader import (GGUFError, GGUFFile, StringArray, TensorInfo, open_gguf, supported_types,
                                 type_supported)

__all__ = ["GGUFError", "GGUFFile", "StringArray", "TensorInfo", "open_gguf", "supported_types", "type_name",
           "type_supported"]
