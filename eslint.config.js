import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const NEST = { group: ['@nestjs/*'], message: 'Only lib/nest/ imports @nestjs/* (issue 10, item 5).' };

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
  // Layers: each folder imports only from the folders below it (protocol ← gateway, cluster ← redis ← nest).
  {
    files: ['lib/**/*.ts'],
    ignores: ['lib/nest/**'],
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
        {
          patterns: [
            NEST,
            { group: ['../gateway/*', '../redis/*', '../nest/*'], message: 'cluster never imports gateway, redis or the Nest layer (issue 10, item 5).' },
            { group: ['../*.js'], message: 'cluster never imports the root (module options, composition): they reach gateway and redis; see cluster/node-options.ts.' },
          ],
        },
      ],
    },
  },
  {
    files: ['lib/gateway/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [NEST, { group: ['../cluster/*', '../redis/*', '../nest/*'], message: 'gateway is the front door only: no cluster, redis or Nest layer (issue 10, item 5).' }] },
      ],
    },
  },
  {
    files: ['lib/nats/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [NEST, { group: ['../gateway/*', '../redis/*', '../nest/*'], message: 'nats never imports gateway, redis or the Nest layer: a transport stands on cluster and protocol only.' }] },
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
