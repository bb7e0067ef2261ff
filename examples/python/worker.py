#!/usr/bin/python3
"""An ensemble-stream model worker in Python (docs/worker-protocol.md).

Debian packages: python3-confluent-kafka, python3-avro. The model here is a multinomial logistic
regression read from one of the project's artifacts (`train` writes them), computed in plain Python;
replace `Model` with your own (anything with `predict(rows) -> list of probability lists`).

    /usr/bin/python3 examples/python/worker.py --artifact artifacts/letter/models/letter-logistic-regression/<version>.json \
        [--model-id ID] [--brokers 127.0.0.1:9092]

Topics follow the services' environment (ES_TOPIC_PREFIX, ES_TOPIC_FEATURES, ES_TOPIC_PREDICTIONS,
ES_TOPIC_DEAD_LETTERS); KAFKA_BROKERS as for the services. Stops cleanly on SIGTERM / SIGINT.
"""
import argparse
import json
import math
import os
import signal
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer

import es_avro

BATCH = 500  # feature events per poll, answered by one model call


class Model:
    """Softmax(W . standardise(x) + b): the project's logistic-regression artifact."""

    def __init__(self, artifact_path):
        with open(artifact_path, encoding="utf-8") as f:
            artifact = json.load(f)
        params = artifact["params"]
        if params["family"] != "logistic-regression":
            raise SystemExit(f"{artifact_path}: this example computes logistic regression, not {params['family']}")
        self.model_id = artifact["modelId"]
        self.version = artifact["version"]
        self.classes = artifact["classes"]
        self.n_features = params["nFeatures"]
        n = self.n_features
        self.weights = [params["weights"][c * n:(c + 1) * n] for c in range(params["nClasses"])]
        self.intercepts = params["intercepts"]
        scaler = params["standardiser"]
        self.mean = scaler["mean"] if scaler else [0.0] * n
        self.inv_scale = [1 / s for s in scaler["scale"]] if scaler else [1.0] * n

    def predict(self, rows):
        out = []
        for x in rows:
            z = [(x[j] - self.mean[j]) * self.inv_scale[j] for j in range(self.n_features)]
            scores = [b + sum(w * v for w, v in zip(ws, z)) for ws, b in zip(self.weights, self.intercepts)]
            top = max(scores)
            e = [math.exp(s - top) for s in scores]
            total = sum(e)
            out.append([v / total for v in e])
        return out


def topics_from_env():
    prefix = os.environ.get("ES_TOPIC_PREFIX", "")
    return {
        "features": prefix + os.environ.get("ES_TOPIC_FEATURES", "features"),
        "predictions": prefix + os.environ.get("ES_TOPIC_PREDICTIONS", "predictions"),
        "dead_letters": prefix + os.environ.get("ES_TOPIC_DEAD_LETTERS", "dead-letters"),
    }


def now_ms():
    return int(time.time() * 1000)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--artifact", required=True)
    parser.add_argument("--model-id")
    parser.add_argument("--brokers", default=os.environ.get("KAFKA_BROKERS", "127.0.0.1:9092"))
    args = parser.parse_args()

    model = Model(args.artifact)
    model_id = args.model_id or model.model_id
    topics = topics_from_env()
    service = f"worker:{model_id}"

    consumer = Consumer({
        "bootstrap.servers": args.brokers,
        "group.id": f"ensemble-stream.worker.{model_id}",  # one group per model: every model sees every request
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,  # offsets are committed after the predictions are acknowledged
        "client.id": f"py-worker-{model_id}",
    })
    producer = Producer({
        "bootstrap.servers": args.brokers,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "client.id": f"py-worker-{model_id}",
    })

    # A prediction goes to its feature event's partition number, so the predictions topic needs at
    # least as many partitions: refuse to start otherwise.
    metadata = consumer.list_topics(timeout=30)
    counts = {name: len(metadata.topics[t].partitions) if t in metadata.topics and metadata.topics[t].error is None else 0
              for name, t in topics.items()}
    if counts["features"] == 0:
        raise SystemExit(f"topic {topics['features']} does not exist")
    if counts["predictions"] < counts["features"]:
        raise SystemExit(f"topic {topics['predictions']} has {counts['predictions']} partitions, fewer than "
                         f"{topics['features']} ({counts['features']}); give both topics the same partition count")

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    consumer.subscribe([topics["features"]])
    print(json.dumps({"msg": "worker started", "model": model_id, "version": model.version}), file=sys.stderr, flush=True)

    failures = []
    def delivered(error, _message):
        if error is not None:
            failures.append(error)

    while not stopping:
        messages = consumer.consume(num_messages=BATCH, timeout=0.2)
        if not messages:
            continue
        accepted = []
        for m in messages:
            if m.error() is not None:
                if m.error().fatal():
                    raise KafkaException(m.error())
                continue
            received = now_ms()
            try:
                event = accept(m, model)
                accepted.append((m, event, received))
            except es_avro.Invalid as bad:
                dead_letter(producer, topics, m, bad, service, received, delivered)

        if accepted:
            started = time.perf_counter()
            try:
                answers, error = model.predict([e["features"] for _, e, _ in accepted]), None
            except Exception as failure:  # the model failed: every request of the batch gets an ERROR
                answers, error = None, f"{type(failure).__name__}: {failure}"
            micros = int((time.perf_counter() - started) * 1e6)
            for i, (m, event, received) in enumerate(accepted):
                probabilities = answers[i] if answers is not None else None
                status = "OK" if probabilities is not None else ("ERROR" if error else "ABSTAIN")
                prediction = {
                    "requestId": event["requestId"],
                    "modelId": model_id,
                    "modelVersion": model.version,
                    "status": status,
                    "probabilities": probabilities,
                    "value": None,
                    "error": error if status == "ERROR" else ("model abstained" if status == "ABSTAIN" else None),
                    "requestCreatedAtMs": event["createdAtMs"],
                    "deadlineMs": event["deadlineMs"],
                    "receivedAtMs": received,
                    "inferenceMicros": micros,
                }
                producer.produce(topics["predictions"], key=m.key(), value=es_avro.PREDICTION.encode(prediction),
                                 headers=es_avro.PREDICTION.headers, partition=m.partition(), on_delivery=delivered)
        # At least once: offsets move only after every prediction and dead letter is acknowledged.
        producer.flush()
        if failures:
            raise KafkaException(failures[0])
        consumer.commit(asynchronous=False)

    consumer.close()
    print(json.dumps({"msg": "worker stopped", "model": model_id}), file=sys.stderr, flush=True)


def accept(m, model):
    key = m.key()
    if not key:
        raise es_avro.Invalid("MISSING_KEY", "message has no key; the key must be the request id")
    event = es_avro.FEATURE_EVENT.decode(m.value(), m.headers() or [])
    if event["requestId"] != key.decode("utf-8", "replace"):
        raise es_avro.Invalid("KEY_MISMATCH", f"message key \"{key.decode('utf-8', 'replace')}\" differs from requestId \"{event['requestId']}\"")
    if len(event["features"]) != model.n_features:
        raise es_avro.Invalid("WRONG_FEATURE_COUNT", f"{len(event['features'])} features, model takes {model.n_features}")
    if not all(math.isfinite(v) for v in event["features"]):
        raise es_avro.Invalid("INVALID_VALUE", "features must be finite numbers")
    return event


def dead_letter(producer, topics, m, bad, service, now, delivered):
    record = {
        "sourceTopic": m.topic(),
        "sourcePartition": m.partition(),
        "sourceOffset": str(m.offset()),
        "key": m.key(),
        "value": m.value(),
        "reasonCode": bad.code,
        "reason": bad.reason,
        "service": service,
        "failedAtMs": now,
    }
    headers = es_avro.DEAD_LETTER.headers + [(es_avro.HEADER_REASON, bad.code.encode())]
    producer.produce(topics["dead_letters"], key=m.key(), value=es_avro.DEAD_LETTER.encode(record), headers=headers, on_delivery=delivered)
    print(json.dumps({"msg": "dead letter", "partition": m.partition(), "offset": m.offset(), "code": bad.code, "reason": bad.reason}),
          file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
