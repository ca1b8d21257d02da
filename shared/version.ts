/** The product version, reported by agents in their hello and by `--version`. */
export const VERSION = '0.1.0';
