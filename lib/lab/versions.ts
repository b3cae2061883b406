// The Kubernetes version a lab emulates, from `--profile`.
export type Profile = 'legacy' | 'modern';
export const VERSION_OF: Record<Profile, string> = { legacy: 'v1.4.2', modern: 'v1.30.0' };
/** The real binaries the systemd lab runs (lib/lab/kube/build.sh builds exactly this version). */
export const REAL_VERSION = 'v1.37.2';
/** Inside a lab host: the emulated version (one line). */
export const VERSION_FILE = '/etc/kubetls-lab/version';

/** What `GET /version` answers; v1.4.2 is the JSON the recipe (SEED.md step 19) shows. */
export function versionInfo(version: string): Record<string, string> {
  if (version === 'v1.4.2') {
    return {
      major: '1', minor: '4', gitVersion: 'v1.4.2', gitCommit: 'c072cc2ee4dfc21b60196e5994c56c40e1c29b93',
      gitTreeState: 'clean', buildDate: '2016-10-15T00:07:23Z', goVersion: 'go1.6.3', compiler: 'gc',
      platform: 'linux/amd64',
    };
  }
  return {
    major: '1', minor: '30', gitVersion: 'v1.30.0', gitCommit: '7c48c2bd72b9bf5c44d21d7338cc7bea77d0ad2a',
    gitTreeState: 'clean', buildDate: '2024-04-17T17:27:03Z', goVersion: 'go1.22.2', compiler: 'gc',
    platform: 'linux/amd64',
  };
}

export const isLegacy = (version: string) => /^v1\.[0-9]\./.test(version);
