package io.ensemblestream.bench;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.Headers;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * The join: one Avro prediction (schemas/prediction.avsc, headers es.schema and es.schema.version
 * as services/shared/codec.ts writes them) at a time, keyed by request id. A request's answers so
 * far live in the store as a compact record of doubles (see {@link Partial}); the answer that
 * completes it is fused, the result forwarded and the entry deleted. A model's second answer to an
 * open request is ignored (the first one counts, as in the aggregator's join).
 */
final class SoftVoteJoin implements Processor<String, byte[], String, byte[]> {
  static final String SCHEMA_HEADER = "es.schema";
  static final String VERSION_HEADER = "es.schema.version";
  static final String SCHEMA_VERSION = "1";
  static final double PROBABILITY_SUM_TOLERANCE = 1e-6;

  private final SoftVote fusion;
  private final int k;
  private final int allModels;
  private final String predictionName;
  private final GenericDatumReader<GenericRecord> reader;
  private final Schema fusedSchema;
  private final GenericDatumWriter<GenericRecord> writer;
  private final byte[] fusedName;
  private final ByteArrayOutputStream out = new ByteArrayOutputStream(1024);
  private BinaryDecoder decoder;
  private BinaryEncoder encoder;
  private GenericRecord reuse;
  private ProcessorContext<String, byte[]> context;
  private KeyValueStore<String, byte[]> store;
  private long skipped;

  SoftVoteJoin(Schema prediction, Schema fused, SoftVote fusion) {
    this.fusion = fusion;
    this.k = fusion.classes.size();
    this.allModels = (1 << fusion.models.size()) - 1;
    this.predictionName = prediction.getFullName();
    this.reader = new GenericDatumReader<>(prediction);
    this.fusedSchema = fused;
    this.writer = new GenericDatumWriter<>(fused);
    this.fusedName = fused.getFullName().getBytes(StandardCharsets.UTF_8);
  }

  @Override
  public void init(ProcessorContext<String, byte[]> context) {
    this.context = context;
    this.store = context.getStateStore(SoftVoteStreams.STORE);
  }

  @Override
  public void process(Record<String, byte[]> record) {
    Answer answer = decode(record);
    if (answer == null) {
      if (++skipped % 1000 == 1) System.err.println("kafka-streams: skipped " + skipped + " unusable record(s)");
      return;
    }
    byte[] stored = store.get(record.key());
    Partial partial = stored == null ? new Partial(answer.requestCreatedAtMs) : Partial.read(stored, k);
    if ((partial.mask & (1 << answer.model)) != 0) return;
    partial.add(answer);
    if (partial.mask != allModels) {
      store.put(record.key(), partial.write(k));
      return;
    }
    store.delete(record.key());
    Headers headers = new RecordHeaders().add(SCHEMA_HEADER, fusedName).add(VERSION_HEADER, SCHEMA_VERSION.getBytes(StandardCharsets.UTF_8));
    context.forward(record.withValue(encode(answer.requestId, partial)).withHeaders(headers));
  }

  /** The prediction if it is one this join can use, else null. */
  private Answer decode(Record<String, byte[]> record) {
    if (record.key() == null || record.value() == null) return null;
    if (!predictionName.equals(header(record.headers(), SCHEMA_HEADER)) || !SCHEMA_VERSION.equals(header(record.headers(), VERSION_HEADER))) return null;
    try {
      decoder = DecoderFactory.get().binaryDecoder(record.value(), decoder);
      reuse = reader.read(reuse, decoder);
    } catch (IOException | RuntimeException e) {
      return null;
    }
    int model = fusion.indexOf(reuse.get("modelId").toString());
    if (model < 0) return null;
    Answer a = new Answer();
    a.model = model;
    a.requestId = reuse.get("requestId").toString();
    a.status = reuse.get("status").toString();
    a.modelVersion = reuse.get("modelVersion").toString();
    Object error = reuse.get("error");
    a.error = error == null ? null : error.toString();
    a.requestCreatedAtMs = (Long) reuse.get("requestCreatedAtMs");
    if (a.status.equals("OK")) {
      a.probabilities = checkedProbabilities(reuse.get("probabilities"));
      if (a.probabilities == null) return null;
    }
    return a;
  }

  /** A distribution over the k classes (each finite and >= 0, summing to 1 within the tolerance), else null. */
  private double[] checkedProbabilities(Object value) {
    if (!(value instanceof List<?> list) || list.size() != k) return null;
    double[] p = new double[k];
    double sum = 0;
    for (int c = 0; c < k; c++) {
      double x = (Double) list.get(c);
      if (!Double.isFinite(x) || x < 0) return null;
      p[c] = x;
      sum += x;
    }
    return Math.abs(sum - 1) <= PROBABILITY_SUM_TOLERANCE ? p : null;
  }

  private static String header(Headers headers, String name) {
    Header h = headers.lastHeader(name);
    return h == null || h.value() == null ? null : new String(h.value(), StandardCharsets.UTF_8);
  }

  /** The FusedPrediction of a request every model answered; its fields as request-fusion.ts fills them. */
  private byte[] encode(String requestId, Partial partial) {
    List<String> models = fusion.models;
    double[][] probabilities = new double[models.size()][];
    int ok = 0;
    for (int i = 0; i < models.size(); i++) {
      probabilities[i] = partial.answers[i].probabilities;
      if (probabilities[i] != null) ok++;
    }
    SoftVote.Result result = ok == 0 ? null : fusion.fuse(probabilities);
    Schema contributorSchema = fusedSchema.getField("contributors").schema().getElementType();
    Schema missingSchema = fusedSchema.getField("missing").schema().getElementType();
    Schema missingReason = missingSchema.getField("reason").schema();
    List<GenericRecord> contributors = new ArrayList<>();
    List<GenericRecord> missing = new ArrayList<>();
    for (int i = 0; i < models.size(); i++) {
      Answer a = partial.answers[i];
      if (a.probabilities != null) {
        GenericRecord c = new GenericData.Record(contributorSchema);
        c.put("modelId", models.get(i));
        c.put("modelVersion", a.modelVersion);
        c.put("weight", result.weightsUsed[i]);
        contributors.add(c);
      } else {
        GenericRecord m = new GenericData.Record(missingSchema);
        m.put("modelId", models.get(i));
        m.put("reason", new GenericData.EnumSymbol(missingReason, a.status));
        m.put("detail", a.error);
        missing.add(m);
      }
    }
    GenericRecord f = new GenericData.Record(fusedSchema);
    f.put("requestId", requestId);
    String status = result == null ? "INSUFFICIENT" : missing.isEmpty() ? "COMPLETE" : "PARTIAL";
    f.put("status", new GenericData.EnumSymbol(fusedSchema.getField("status").schema(), status));
    f.put("strategy", "soft-voting");
    f.put("label", result == null ? null : fusion.classes.get(result.label));
    f.put("probabilities", result == null ? null : doubles(result.probabilities));
    f.put("value", null);
    f.put("contributors", contributors);
    f.put("missing", missing);
    f.put("requestCreatedAtMs", partial.requestCreatedAtMs);
    f.put("fusedAtMs", System.currentTimeMillis());
    f.put("classes", fusion.classes);
    out.reset();
    encoder = EncoderFactory.get().binaryEncoder(out, encoder);
    try {
      writer.write(f, encoder);
      encoder.flush();
    } catch (IOException e) {
      throw new IllegalStateException(e);
    }
    return out.toByteArray();
  }

  private static List<Double> doubles(double[] xs) {
    List<Double> out = new ArrayList<>(xs.length);
    for (double x : xs) out.add(x);
    return out;
  }

  static final class Answer {
    int model;
    String requestId;
    String status;
    String modelVersion;
    String error;
    long requestCreatedAtMs;
    /** Null unless status is OK. */
    double[] probabilities;
  }

  /**
   * A request's answers so far, as stored: mask (int), requestCreatedAtMs (long), then per answer
   * its model index (byte), status, model version and error (length-prefixed UTF-8, -1 for null) and,
   * when OK (a flag byte), its k doubles.
   */
  static final class Partial {
    int mask;
    final long requestCreatedAtMs;
    final Answer[] answers = new Answer[Integer.SIZE];

    Partial(long requestCreatedAtMs) {
      this.requestCreatedAtMs = requestCreatedAtMs;
    }

    void add(Answer a) {
      mask |= 1 << a.model;
      answers[a.model] = a;
    }

    static Partial read(byte[] bytes, int k) {
      ByteBuffer b = ByteBuffer.wrap(bytes);
      int mask = b.getInt();
      Partial p = new Partial(b.getLong());
      for (int n = Integer.bitCount(mask); n > 0; n--) {
        Answer a = new Answer();
        a.model = b.get();
        a.status = text(b);
        a.modelVersion = text(b);
        a.error = text(b);
        if (b.get() == 1) {
          a.probabilities = new double[k];
          for (int c = 0; c < k; c++) a.probabilities[c] = b.getDouble();
        }
        p.add(a);
      }
      return p;
    }

    byte[] write(int k) {
      List<byte[]> texts = new ArrayList<>();
      int size = 4 + 8;
      for (Answer a : answers) {
        if (a == null) continue;
        for (String s : new String[] {a.status, a.modelVersion, a.error}) {
          byte[] t = s == null ? null : s.getBytes(StandardCharsets.UTF_8);
          texts.add(t);
          size += 4 + (t == null ? 0 : t.length);
        }
        size += 2 + (a.probabilities == null ? 0 : 8 * k);
      }
      ByteBuffer b = ByteBuffer.allocate(size);
      b.putInt(mask).putLong(requestCreatedAtMs);
      int t = 0;
      for (Answer a : answers) {
        if (a == null) continue;
        b.put((byte) a.model);
        for (int i = 0; i < 3; i++) {
          byte[] s = texts.get(t++);
          b.putInt(s == null ? -1 : s.length);
          if (s != null) b.put(s);
        }
        b.put((byte) (a.probabilities == null ? 0 : 1));
        if (a.probabilities != null) for (double x : a.probabilities) b.putDouble(x);
      }
      return b.array();
    }

    private static String text(ByteBuffer b) {
      int n = b.getInt();
      if (n < 0) return null;
      byte[] t = new byte[n];
      b.get(t);
      return new String(t, StandardCharsets.UTF_8);
    }
  }
}
