package io.ensemblestream.bench;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.avro.Schema;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.state.Stores;

/**
 * What a user would build instead of the fusion aggregator: a Kafka Streams application that joins
 * every model's prediction of a request (the record key) in a state store and, once all configured
 * models answered, writes the soft-vote fused result (schemas/fused-prediction.avsc) to its own
 * topic, exactly once (exactly_once_v2). Everything else is left as Kafka Streams sets it: one
 * stream thread, commit.interval.ms 100 (its default under exactly-once), a persistent (RocksDB)
 * store with a changelog topic, auto.offset.reset earliest.
 *
 * <p>Unlike the aggregator it has no deadlines, circuit breakers or dead-letter topic: a request
 * waits until every model answered, and a record it cannot use is logged and skipped.
 *
 * <pre>
 * java -jar kafka-streams-join.jar --bootstrap HOST:PORT --application-id ID --input TOPIC
 *   --output TOPIC --models a,b,c [--weights 1,1,1] --classes c0,c1,... --schemas DIR [--state-dir DIR]
 * </pre>
 */
public final class SoftVoteStreams {
  static final String STORE = "partial-joins";

  private SoftVoteStreams() {}

  public static void main(String[] args) throws Exception {
    Map<String, String> a = parseArgs(args);
    List<String> models = List.of(required(a, "models").split(","));
    if (models.size() > 31) throw new IllegalArgumentException("at most 31 models");
    double[] weights = new double[models.size()];
    String[] w = a.getOrDefault("weights", "").isEmpty() ? new String[0] : a.get("weights").split(",");
    for (int i = 0; i < weights.length; i++) weights[i] = w.length == 0 ? 1.0 : Double.parseDouble(w[i]);
    List<String> classes = List.of(required(a, "classes").split(","));
    Path schemas = Path.of(required(a, "schemas"));
    Schema prediction = new Schema.Parser().parse(Files.readString(schemas.resolve("prediction.avsc")));
    Schema fused = new Schema.Parser().parse(Files.readString(schemas.resolve("fused-prediction.avsc")));
    SoftVote fusion = new SoftVote(models, weights, classes);

    Properties props = new Properties();
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, required(a, "application-id"));
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, required(a, "bootstrap"));
    props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
    if (a.containsKey("state-dir")) props.put(StreamsConfig.STATE_DIR_CONFIG, a.get("state-dir"));

    Topology topology = topology(required(a, "input"), required(a, "output"), prediction, fused, fusion);
    KafkaStreams streams = new KafkaStreams(topology, props);
    CountDownLatch stopped = new CountDownLatch(1);
    streams.setStateListener((now, before) -> {
      System.out.println("kafka-streams state " + before + " -> " + now);
      if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) stopped.countDown();
    });
    streams.setUncaughtExceptionHandler(error -> {
      System.err.println("kafka-streams: stream thread failed: " + error);
      return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
    });
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      streams.close(Duration.ofSeconds(20));
      stopped.countDown();
    }));
    streams.start();
    stopped.await();
    if (streams.state() == KafkaStreams.State.ERROR) System.exit(1);
  }

  static Topology topology(String input, String output, Schema prediction, Schema fused, SoftVote fusion) {
    StreamsBuilder builder = new StreamsBuilder();
    builder.addStateStore(Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore(STORE), Serdes.String(), Serdes.ByteArray()));
    builder.stream(input, Consumed.with(Serdes.String(), Serdes.ByteArray()))
        .process(() -> new SoftVoteJoin(prediction, fused, fusion), STORE)
        .to(output, Produced.with(Serdes.String(), Serdes.ByteArray()));
    return builder.build();
  }

  private static Map<String, String> parseArgs(String[] args) {
    Map<String, String> out = new HashMap<>();
    List<String> rest = new ArrayList<>(List.of(args));
    while (!rest.isEmpty()) {
      String flag = rest.remove(0);
      if (!flag.startsWith("--") || rest.isEmpty()) throw new IllegalArgumentException("expected --name value, got " + flag);
      out.put(flag.substring(2), rest.remove(0));
    }
    return out;
  }

  private static String required(Map<String, String> args, String name) {
    String value = args.get(name);
    if (value == null || value.isEmpty()) throw new IllegalArgumentException("--" + name + " is required");
    return value;
  }
}
