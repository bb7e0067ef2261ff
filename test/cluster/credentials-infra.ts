import { inject } from 'vitest';

/** The broker with a SCRAM listener and the Redis with an ACL user that run.sh started. */
export interface CredentialsInfra {
  scramBrokers: string[];
  scramUser: string;
  scramPassword: string;
  /** Without credentials: they come from the variables below, as a service is given them. */
  aclRedisUrl: string;
  aclUser: string;
  aclPassword: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    credentials: CredentialsInfra;
  }
}

export function credentialsInfra(): CredentialsInfra {
  return inject('credentials');
}
