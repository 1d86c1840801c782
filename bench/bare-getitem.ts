import { DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';

// The yardstick for cold start: a bare Lambda handler that reads one DynamoDB item, bundled like ours.
const client = new DynamoDBClient({});

export const handler = async (event: { key: string }) => {
  const out = await client.send(new GetItemCommand({ TableName: process.env.TABLE, Key: { pk: { S: event.key } } }));
  return { statusCode: 200, body: JSON.stringify(out.Item ?? null) };
};
