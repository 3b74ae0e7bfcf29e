import cjs from './index.cjs';

export const { createLogger, consoleTransport, prettyTransport } = cjs;
export default cjs;
