

def test_a_stateful_lstm_carries_its_states_alike():
    x, y = sequences(n=16)
    out = {}
    for backend in ("cpu", "gpu"):
        config.set_backend(backend)
        set_random_seed(2)
        model = Sequential([L.LSTM(4, stateful=True, batch_input_shape=(4, 6, 3)), L.Dense(3, activation="softmax")])
        model.compile(optimizer="sgd", loss="categorical_crossentropy")
        losses = []
        for _ in range(2):
            losses += model.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0).history["loss"]
            model.reset_states()
        p = model.predict(x, batch_size=4, verbose=0)
        out[backend] = (losses, p, model.layers[0].states[0] if hasattr(model.layers[0], "states") else None)
    np.testing.assert_allclose(out["gpu"][0], out["cpu"][0], rtol=1e-4)
    np.testing.assert_allclose(out["gpu"][1], out["cpu"][1], rtol=1e-4, atol=1e-6)
