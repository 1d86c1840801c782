import { writeFileSync } from 'node:fs';
import { openApiText } from './openapi';

// npm run openapi: regenerates openapi.json from the zod schemas.
writeFileSync(new URL('../openapi.json', import.meta.url), openApiText());
console.log('wrote openapi.json');
