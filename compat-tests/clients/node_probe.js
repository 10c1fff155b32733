// node-postgres (`pg`) against Tributary: simple queries, parameterized (extended) queries, a named
// prepared statement executed repeatedly, a transaction. Usage: node node_probe.js PORT
const assert = require('assert');
const { Client } = require('pg');

async function main() {
  const client = new Client({ host: '127.0.0.1', port: Number(process.argv[2]), user: 'tester', database: 'tpch' });
  await client.connect();
  let res = await client.query('select n_nationkey, n_name from nation order by 1 limit 3');
  assert.deepStrictEqual(res.rows.map((r) => r.n_name), ['ALGERIA', 'ARGENTINA', 'BRAZIL']);
  res = await client.query('select n_name from nation where n_nationkey = $1', [2]);
  assert.strictEqual(res.rows[0].n_name, 'BRAZIL');
  for (let i = 0; i < 6; i++) {
    res = await client.query({ name: 'region-by-key', text: 'select r_name from region where r_regionkey = $1', values: [i % 5] });
    assert.strictEqual(res.rowCount, 1);
  }
  await client.query('BEGIN');
  res = await client.query('select count(*)::int4 as n from region');
  assert.strictEqual(res.rows[0].n, 5);
  await client.query('COMMIT');
  res = await client.query("select 1 as a; select 'b' as b");
  assert.strictEqual(res.length, 2);
  await client.end();
  console.log('node-postgres ok');
}

main().catch((e) => { console.error(e); process.exit(1); });
