import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// What a new user reads first: the README, the docs, the client's own README and the banner local mode prints.

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const read = (path: string) => readFileSync(join(repo, path), 'utf8');
const docs = readdirSync(join(repo, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`);
const firstReads = ['README.md', 'packages/client/README.md', 'functions/local-main.ts', ...docs];

describe('what a new user is told', () => {
  it('never to install the client from the public registry: its scope is nobody’s there', () => {
    // npm install / i / add of the package's name, with or without flags in between; npx of it too.
    const publicInstall = /\b(?:npm\s+(?:install|i|add)|yarn\s+add|pnpm\s+add)\s+(?:-\S+\s+)*@token-broker\/client\b|\bnpx\s+@token-broker\//;
    for (const path of firstReads) expect(read(path), path).not.toMatch(publicInstall);
    expect(read('packages/client/README.md')).toContain('npm pack');
  });

  it('as many demo connections as local mode starts, by name', () => {
    const started = [...read('lib/local/app.ts').matchAll(/\bid: '(demo-[a-z0-9-]+)'/g)].map((m) => m[1]);
    const page = read('docs/local-mode.md');
    const listed = /^Connections: (.+)$/m.exec(page)?.[1]?.split(', ');
    expect(listed).toEqual(started);
    const words = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten', 'eleven', 'twelve'];
    expect(page).toContain(`${words[started.length]} demo connections`);
  });
});
