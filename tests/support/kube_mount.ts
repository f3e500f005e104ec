// Test support: a directory laid out and updated exactly as the kubelet mounts a ConfigMap or Secret volume.

/** Name of the symlink that points at the timestamped directory holding the current files. */
export const DATA_LINK = "..data";
const DATA_TMP_LINK = "..data_tmp";

let sequence = 0;

/** `..2026_11_21_22_00_00.123456`: the kubelet's timestamped directory name, unique within this process. */
function timestampedName(now = new Date()): string {
  const pad = (n: number, width = 2) => String(n).padStart(width, "0");
  const micros = (now.getUTCMilliseconds() * 1000 + (sequence++ % 1000)) % 1_000_000;
  return `..${now.getUTCFullYear()}_${pad(now.getUTCMonth() + 1)}_${pad(now.getUTCDate())}_${pad(now.getUTCHours())}_${
    pad(now.getUTCMinutes())
  }_${pad(now.getUTCSeconds())}.${pad(micros, 6)}`;
}

/**
 * A ConfigMap/Secret volume: `dir/..2026_…/KEY` holds the data, `dir/..data -> ..2026_…`, and
 * `dir/KEY -> ..data/KEY` for each key. {@linkcode KubeMount.update} swaps the data the way the kubelet's
 * AtomicWriter does: new timestamped directory, `..data_tmp` symlink, rename over `..data`, remove the old one.
 */
export class KubeMount {
  readonly dir: string;
  #current: string;
  #keys: Set<string>;

  private constructor(dir: string, current: string, keys: Set<string>) {
    this.dir = dir;
    this.#current = current;
    this.#keys = keys;
  }

  /** Creates the mount in `dir` (created if missing) with `files` (key → content). */
  static async create(dir: string, files: Readonly<Record<string, string>>): Promise<KubeMount> {
    await Deno.mkdir(dir, { recursive: true });
    const current = await writeTimestamped(dir, files);
    await Deno.symlink(current, `${dir}/${DATA_LINK}`);
    const keys = new Set(Object.keys(files));
    for (const key of keys) await Deno.symlink(`${DATA_LINK}/${key}`, `${dir}/${key}`);
    return new KubeMount(dir, current, keys);
  }

  /** The timestamped directory `..data` points at. */
  get current(): string {
    return this.#current;
  }

  /** Replaces every key atomically (keys missing from `files` disappear, as with the kubelet). */
  async update(files: Readonly<Record<string, string>>): Promise<void> {
    const next = await writeTimestamped(this.dir, files);
    await Deno.symlink(next, `${this.dir}/${DATA_TMP_LINK}`);
    await Deno.rename(`${this.dir}/${DATA_TMP_LINK}`, `${this.dir}/${DATA_LINK}`);
    const keys = new Set(Object.keys(files));
    for (const key of keys) {
      if (!this.#keys.has(key)) await Deno.symlink(`${DATA_LINK}/${key}`, `${this.dir}/${key}`);
    }
    for (const key of this.#keys) {
      if (!keys.has(key)) await Deno.remove(`${this.dir}/${key}`);
    }
    await Deno.remove(`${this.dir}/${this.#current}`, { recursive: true });
    this.#current = next;
    this.#keys = keys;
  }
}

async function writeTimestamped(dir: string, files: Readonly<Record<string, string>>): Promise<string> {
  const name = timestampedName();
  await Deno.mkdir(`${dir}/${name}`);
  for (const [key, content] of Object.entries(files)) {
    if (key.includes("/") || key.startsWith(".")) throw new Error(`Cannot mount key ${JSON.stringify(key)}`);
    await Deno.writeTextFile(`${dir}/${name}/${key}`, content);
  }
  return name;
}
