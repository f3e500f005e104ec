// A bounded memo of a pure function of one text: Pods of one template ask the same question at every admission.

/**
 * Remembers `compute(text)` for the texts asked lately: at most `maxEntries` of them and `maxChars` characters of
 * texts and answers together; when either is full, everything is forgotten at once (the next texts start it again).
 * Only for functions whose answer depends on the text alone.
 */
export class TextMemo {
  readonly #compute: (text: string) => string;
  readonly #maxEntries: number;
  readonly #maxChars: number;
  readonly #answers = new Map<string, string>();
  #chars = 0;

  constructor(compute: (text: string) => string, { maxEntries = 256, maxChars = 1024 * 1024 } = {}) {
    this.#compute = compute;
    this.#maxEntries = maxEntries;
    this.#maxChars = maxChars;
  }

  /** Texts remembered now. */
  get size(): number {
    return this.#answers.size;
  }

  /** `compute(text)`, from memory when `text` was asked lately. */
  get(text: string): string {
    const known = this.#answers.get(text);
    if (known !== undefined) return known;
    const answer = this.#compute(text);
    const chars = text.length + answer.length;
    // A text too large to be worth holding is answered, not remembered.
    if (chars > this.#maxChars / 16) return answer;
    if (this.#answers.size >= this.#maxEntries || this.#chars + chars > this.#maxChars) {
      this.#answers.clear();
      this.#chars = 0;
    }
    this.#answers.set(text, answer);
    this.#chars += chars;
    return answer;
  }
}
