/* global module */
'use strict';
// ocpp-ws-io 2.3.2 imports createLogger, consoleTransport and prettyTransport from 'voltlog-io'
// and 'voltlog-io/client'. The bench needs its logging off, so every logger here is silent.
const noop = () => undefined;

function createLogger() {
  const logger = {
    trace: noop,
    debug: noop,
    info: noop,
    warn: noop,
    error: noop,
    fatal: noop,
    log: noop,
    child: () => logger,
    flush: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
  return logger;
}

const transport = (name) => () => ({ name, write: noop, flush: () => Promise.resolve(), close: () => Promise.resolve() });

module.exports = {
  createLogger,
  consoleTransport: transport('console'),
  prettyTransport: transport('pretty'),
};
