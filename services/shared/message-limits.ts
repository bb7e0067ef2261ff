/**
 * The size limits of the pipeline, in one place. Kafka refuses a record batch over the topic's
 * max.message.bytes; everything this project produces must fit under it (dead letters included,
 * whatever they quote), and every consumer must be able to fetch the largest record the broker
 * accepts, or one such record stops its partition for good.
 */

/** max.message.bytes of the topics this project creates (the broker's own default is 1,048,588). */
export const TOPIC_MAX_MESSAGE_BYTES = 1_048_576;

/**
 * A consumer's whole fetch response may be this large (kafkajs `maxBytes`). Brokers return the first
 * record batch of a partition whole even when it is larger than the per-partition cap (KIP-74), so
 * with the response bound above the topic's limit any accepted record can be fetched.
 */
export const FETCH_MAX_BYTES = 4 * TOPIC_MAX_MESSAGE_BYTES;

/** Consumers' default limit for one message, checked before decoding (the aggregator's `maxMessageBytes`, a worker's ES_MAX_MESSAGE_BYTES). */
export const DEFAULT_MAX_MESSAGE_BYTES = 65_536;

/**
 * A dead letter quotes at most this many bytes of the original key and of its value; the rest is
 * referenced by source topic, partition and offset. Two quotes and the reason stay far below
 * TOPIC_MAX_MESSAGE_BYTES, so a dead letter always fits its topic.
 */
export const DEAD_LETTER_QUOTE_BYTES = 64 * 1024;

/** Longest reason text a dead letter carries (a reason may quote a key). */
export const DEAD_LETTER_REASON_CHARS = 2000;
