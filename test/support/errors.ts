import { InvalidMessageError } from '../../services/shared/errors.js';

/** The InvalidMessageError that `run` throws; fails the test if it throws nothing or something else. */
export function invalidMessage(run: () => unknown): InvalidMessageError {
  try {
    run();
  } catch (error) {
    if (error instanceof InvalidMessageError) return error;
    throw error;
  }
  throw new Error('expected an InvalidMessageError');
}
