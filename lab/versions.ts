// The Kubernetes version a lab runs, from `--profile`: the legacy profile's 1.4 programs are stand-ins that answer as
// v1.4.2; the modern profile runs the real binaries lab/kube/build.sh builds, at exactly this version.
export type Profile = 'legacy' | 'modern';
export const REAL_VERSION = 'v1.37.2';
export const VERSION_OF: Record<Profile, string> = { legacy: 'v1.4.2', modern: REAL_VERSION };
/** Inside a lab host: the version (one line). */
export const VERSION_FILE = '/etc/kubetls-lab/version';

/** What the 1.4 stand-in apiserver answers to `GET /version`: the JSON the recipe (docs/recipe.md step 19) shows. */
export function versionInfo(version: string): Record<string, string> {
  return {
    major: '1', minor: '4', gitVersion: version, gitCommit: 'c072cc2ee4dfc21b60196e5994c56c40e1c29b93',
    gitTreeState: 'clean', buildDate: '2016-10-15T00:07:23Z', goVersion: 'go1.6.3', compiler: 'gc',
    platform: 'linux/amd64',
  };
}
