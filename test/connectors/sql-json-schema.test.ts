import { z } from 'zod';
import { mysqlConnector } from '../../connectors/mysql';
import { postgresConnector } from '../../connectors/postgres';

type JsonSchema = { properties?: Record<string, JsonSchema & { description?: string }>; items?: JsonSchema; anyOf?: JsonSchema[] };

describe('SQL connector JSON Schemas', () => {
  test('the JSON Schema of POSTGRES and MYSQL describes every top-level property, and every field of a transaction statement', () => {
    for (const type of [postgresConnector, mysqlConnector]) {
      // As core/service.ts types() serves it at GET /v1/types/:type.
      const schema = z.toJSONSchema(type.schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
      const properties = Object.entries(schema.properties ?? {});
      expect(properties.map(([name]) => name)).toEqual(expect.arrayContaining(['host', 'port', 'database', 'user', 'password', 'sql', 'statements']));
      const undescribed = properties.filter(([, property]) => !property.description?.trim()).map(([name]) => `${type.name}.${name}`);
      expect(undescribed).toEqual([]);

      const statement = schema.properties?.statements?.items?.properties ?? {};
      expect(Object.keys(statement)).toEqual(['sql', 'params']);
      expect(Object.entries(statement).filter(([, property]) => !property.description?.trim())).toEqual([]);
      // Defaults and units travel with the text.
      expect(schema.properties?.port?.description).toContain(type.name === 'POSTGRES' ? 'Default 5432' : 'Default 3306');
      expect(schema.properties?.statement_timeout?.description).toContain('Default 30000 (30 s)');
    }
  });
});
