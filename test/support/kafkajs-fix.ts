// kafkajs's send loop is replaced before any test file loads kafkajs (see the module).
import '../../services/shared/kafkajs-produce-fix.js';
