// On a machine with no Docker API at all (this project's Debian CI and development machines), the
// project's own scripts can provide one: rootful podman serving the Docker API, and locally built
// images. So `npm test` works on a fresh machine of that kind, with nothing installed by hand.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../services/shared/repo-root.js';

/** Whether some Docker API is already configured or present where clients look by default. */
function dockerApiConfigured(env: NodeJS.ProcessEnv): boolean {
  return env.DOCKER_HOST !== undefined || existsSync('/var/run/docker.sock');
}

/** Only where the scripts can work: Linux, as root, with Debian's package manager. */
function canProvideEngine(): boolean {
  return process.platform === 'linux' && process.getuid?.() === 0 && existsSync('/usr/bin/apt-get');
}

/** Applies `export A=x B=y` lines printed by the scripts to this process's environment. */
function applyExports(output: string, env: NodeJS.ProcessEnv): void {
  for (const line of output.split('\n')) {
    if (!line.startsWith('export ')) continue;
    for (const pair of line.slice('export '.length).trim().split(/\s+/)) {
      const eq = pair.indexOf('=');
      if (eq > 0) env[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
  }
}

/**
 * Sets up the local engine and images when no Docker API is configured and this machine can run the
 * scripts; returns whether it did. Elsewhere testcontainers fails with its own clear message.
 */
export function provideLocalEngineIfMissing(env: NodeJS.ProcessEnv = process.env): boolean {
  if (dockerApiConfigured(env) || !canProvideEngine()) return false;
  const script = (name: string) => join(repoRoot(), 'infra', 'containers', name);
  console.log('integration infra: no Docker API configured; setting up podman and the local images (infra/containers)');
  applyExports(execFileSync('bash', [script('engine.sh'), 'up'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }), env);
  applyExports(execFileSync('bash', [script('build-images.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }), env);
  return true;
}
