// The seed's "Custom Adapters" example, as printed (ocpp-ws-io → nestjs-ocpp-cluster, and
// `server.setAdapter(...)` → the module's `adapter` option). Checked by `npm run typecheck`:
// it must compile without casts or extra members.
/* eslint-disable @typescript-eslint/no-unused-vars -- the seed's parameter names are kept as printed */
import { defineAdapter, OcppClusterModule } from '../../lib/index.js';

declare const rabbitmq: {
  publish(channel: string, body: string): Promise<void>;
  subscribe(channel: string, listener: (msg: string) => void): void;
  unsubscribe(channel: string): void;
  close(): Promise<void>;
};

const myRabbitMQAdapter = defineAdapter({
  // 1. Broadcast an outbound message/event from this node to others
  publish: async (channel, data) => {
    await rabbitmq.publish(channel, JSON.stringify(data));
  },

  // 2. Point-to-Point Messaging (Mass Delivery)
  publishBatch: async (messages) => {
    // Optional: optimize delivery if your broker supports batching
  },

  // 3. Listen for incoming messages from the broker
  subscribe: async (channel, handler) => {
    rabbitmq.subscribe(channel, (msg) => handler(JSON.parse(msg)));
  },

  // 4. Cleanup
  unsubscribe: async (channel) => {
    rabbitmq.unsubscribe(channel);
  },

  disconnect: async () => {
    await rabbitmq.close();
  },

  // Optional: Advanced Presence Tracking
  setPresence: async (identity, nodeId, ttl) => {
    /* ... */
  },
  getPresence: async (identity) => {
    /* ... */ return null;
  },
  removePresence: async (identity) => {
    /* ... */
  },
});

// Attach it to your server!
export const seedModule = OcppClusterModule.forRoot({ adapter: myRabbitMQAdapter });
