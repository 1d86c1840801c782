import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { openApiDocument } from '../../functions/openapi';

// The README and docs/ are what a clone has: they must stand alone, and every link in them must lead somewhere.

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const pages = ['README.md', ...readdirSync(join(repo, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const text = (page: string) => readFileSync(join(repo, page), 'utf8');

describe('documentation', () => {
  it.each(pages)('%s points nowhere outside the repository', (page) => {
    expect(text(page)).not.toMatch(/\.\.\/shared|DESIGN\.md/);
  });

  it.each(pages)('every relative link of %s leads to a file (and its anchor to a heading)', (page) => {
    const broken: string[] = [];
    for (const [, target] of text(page).matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target!)) continue;
      const [file, anchor] = target!.split('#') as [string, string?];
      const path = file ? join(repo, dirname(page), file) : join(repo, page);
      if (!existsSync(path)) {
        broken.push(target!);
        continue;
      }
      if (anchor && path.endsWith('.md')) {
        const slugs = [...readFileSync(path, 'utf8').matchAll(/^#+ (.+)$/gm)].map((m) =>
          m[1]!.toLowerCase().replace(/[^\w\- ]/g, '').replace(/ /g, '-'),
        );
        if (!slugs.includes(anchor)) broken.push(target!);
      }
    }
    expect(broken).toEqual([]);
  });

  it('the API reference names every route and every problem code of openapi.json', () => {
    const api = text('docs/api.md');
    for (const path of Object.keys(openApiDocument().paths)) expect(api).toContain(path.replace('{id}', '{id}'));
    const codes = (openApiDocument().components.schemas.Problem as { properties: { code: { enum: string[] } } }).properties.code.enum;
    for (const code of codes) expect(api).toContain(`\`${code}\``);
  });

  it('the README names the two commands and links the docs', () => {
    const readme = text('README.md');
    expect(readme).toContain('npm install && npm start');
    expect(readme).toContain('npm test');
    for (const page of pages.filter((p) => p.startsWith('docs/'))) expect(readme).toContain(`(${page})`);
  });
});
