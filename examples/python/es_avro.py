"""Avro records of ensemble-stream for Python clients (Debian: python3-avro).

Values are plain Avro binary (no Schema Registry framing); headers es.schema / es.schema.version
name the writer schema. Schemas are read from the repository's schemas/ directory.
"""
import io
import json
import os

import avro.io
import avro.schema

SCHEMA_DIR = os.environ.get("ES_SCHEMA_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "schemas"))
SCHEMA_VERSION = "1"
HEADER_SCHEMA = "es.schema"
HEADER_SCHEMA_VERSION = "es.schema.version"
HEADER_REASON = "es.reason"


def _plain(node):
    """The schema without logical types: timestamp-millis values stay int milliseconds (same bytes)."""
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items() if k != "logicalType"}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


class Codec:
    def __init__(self, file_name):
        with open(os.path.join(SCHEMA_DIR, file_name), encoding="utf-8") as f:
            self.schema = avro.schema.parse(json.dumps(_plain(json.load(f))))
        self.name = self.schema.fullname  # e.g. io.ensemblestream.v1.FeatureEvent
        self.headers = [(HEADER_SCHEMA, self.name.encode()), (HEADER_SCHEMA_VERSION, SCHEMA_VERSION.encode())]
        self._writer = avro.io.DatumWriter(self.schema)
        self._reader = avro.io.DatumReader(self.schema)

    def encode(self, record):
        buffer = io.BytesIO()
        self._writer.write(record, avro.io.BinaryEncoder(buffer))
        return buffer.getvalue()

    def decode(self, value, headers=None):
        """Raises Invalid(code, reason) for a message this schema cannot read."""
        if headers is not None:
            named = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in headers}
            if named.get(HEADER_SCHEMA) != self.name or named.get(HEADER_SCHEMA_VERSION) != SCHEMA_VERSION:
                raise Invalid("SCHEMA_MISMATCH", f"expected schema {self.name} v{SCHEMA_VERSION}, message says "
                                                 f"{named.get(HEADER_SCHEMA, '(no schema header)')} v{named.get(HEADER_SCHEMA_VERSION, '?')}")
        if not value:
            raise Invalid("UNDECODABLE", "empty message value")
        try:
            decoder = avro.io.BinaryDecoder(io.BytesIO(value))
            record = self._reader.read(decoder)
        except Exception as error:  # avro raises several types for bad bytes
            raise Invalid("UNDECODABLE", f"not a valid {self.name}: {error}") from error
        return record


class Invalid(Exception):
    def __init__(self, code, reason):
        super().__init__(reason)
        self.code = code
        self.reason = reason


FEATURE_EVENT = Codec("feature-event.avsc")
PREDICTION = Codec("prediction.avsc")
FUSED_PREDICTION = Codec("fused-prediction.avsc")
LABEL = Codec("label.avsc")
DEAD_LETTER = Codec("dead-letter.avsc")
