/** The little the core needs from a logger; the Nest layer passes Nest's Logger. */
export interface ClusterLogger {
  log(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  debug?(message: string): void;
}

export const SILENT_LOGGER: ClusterLogger = {
  log: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};
