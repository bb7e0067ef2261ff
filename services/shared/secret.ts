import { readFileSync } from 'node:fs';
import { inspect } from 'node:util';
import { ConfigError } from './errors.js';

/**
 * A password or key that must never reach a log line or an error message: it prints, serialises
 * and inspects as `[redacted]`, and only `reveal()` hands it to the client that needs it.
 */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return '[redacted]';
  }
  toJSON(): string {
    return '[redacted]';
  }
  [inspect.custom](): string {
    return 'Secret([redacted])';
  }
}

/**
 * A secret from `NAME` or from the file `NAME_FILE` names (a mounted secret; one trailing newline is
 * dropped), never both. Errors name the variable and the file, never the content.
 */
export function readSecret(env: NodeJS.ProcessEnv, name: string): Secret | undefined {
  const direct = env[name];
  const file = env[`${name}_FILE`];
  if (direct !== undefined && file !== undefined) throw new ConfigError(`${name} and ${name}_FILE are both set; set one`);
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      throw new ConfigError(`${name}_FILE: cannot read "${file}" (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    const value = text.replace(/\r?\n$/, '');
    if (value === '') throw new ConfigError(`${name}_FILE: "${file}" is empty`);
    return new Secret(value);
  }
  if (direct === undefined) return undefined;
  if (direct === '') throw new ConfigError(`${name} is set but empty`);
  return new Secret(direct);
}

/** A PEM file's content for a TLS option; the error names the variable and the path. */
export function readPemFile(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const path = env[name];
  if (path === undefined || path === '') return undefined;
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`${name}: cannot read "${path}" (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}
