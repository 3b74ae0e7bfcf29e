import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const NEST = { group: ['@nestjs/*'], message: 'Only the Nest layer imports @nestjs/* (issue 10, item 5).' };
/** The files that make up the Nest layer until they move to one folder (lib/nest/). */
const NEST_LAYER = [
  'lib/ocpp-cluster.module.ts',
  'lib/ocpp-cluster.module-definition.ts',
  'lib/ocpp-cluster.service.ts',
  'lib/ocpp-cluster.lifecycle.ts',
  'lib/gateway/ocpp-handler.decorator.ts',
  'lib/gateway/ocpp-handler.explorer.ts',
  'lib/health/ocpp-cluster.health-indicator.ts',
];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'schemas/**', 'bench/results/**', 'lib/generated/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  // Layers: each folder imports only from the folders below it (protocol ← gateway, cluster ← redis ← Nest).
  {
    files: ['lib/**/*.ts'],
    ignores: NEST_LAYER,
    rules: { 'no-restricted-imports': ['error', { patterns: [NEST] }] },
  },
  {
    files: ['lib/protocol/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [NEST, { group: ['../*', '!../generated', '!../generated/*'], message: 'protocol imports nothing else of ours (issue 10, item 5).' }] },
      ],
    },
  },
  {
    files: ['lib/cluster/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [NEST, { group: ['../gateway/*', '../redis/*', '../nest/*'], message: 'cluster never imports gateway, redis or the Nest layer (issue 10, item 5).' }] },
      ],
    },
  },
  {
    files: ['lib/redis/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [NEST, { group: ['../gateway/*', '../nest/*'], message: 'redis never imports gateway or the Nest layer (issue 10, item 5).' }] },
      ],
    },
  },
);
