INSERT INTO market_bars (symbol, bar_date, open, high, low, close, volume, source)
VALUES (%(symbol)s, %(bar_date)s, %(open)s, %(high)s, %(low)s, %(close)s, %(volume)s, %(source)s)
ON CONFLICT (symbol, bar_date) DO UPDATE
SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low,
    close = EXCLUDED.close, volume = EXCLUDED.volume, source = EXCLUDED.source
