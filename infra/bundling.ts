// How every function is bundled, in one place: BrokerFunction hands it to NodejsFunction's esbuild, and
// `npm run bench` builds with the same options to measure what a cold start loads.
export const FUNCTION_BUNDLING = {
  target: 'node22',
  minify: true,
  sourceMap: true,
  mainFields: ['module', 'main'],
  // The nodejs22.x runtime provides the AWS SDK v3; the functions import it rather than carry it.
  externalModules: ['@aws-sdk/*'],
  // Some bundled CommonJS code calls require(); ESM has none until it is made.
  banner: "import{createRequire}from'module';const require=createRequire(import.meta.url);",
};
