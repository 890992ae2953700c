from socket import *

cli = socket(AF_INET, SOCK_STREAM)
cli.connect(("192.168.61.114", 8888))

while True:
    msg = input("请输入数据:").strip()
    if len(msg) == 0:
        continue
    if msg == "quit":
        break

    cli.send(msg.encode('utf-8'))
    # 拿到服务器将要发送的数据长度
    length = int(cli.recv(1024).decode('utf-8'))
    print(length)
    # 告诉服务端我拿到了长度
    cli.send('recv_ready'.encode('utf-8'))

    send_size = 0
    recv_size = 0

    data = b"" # 1024 2048 3000
    while recv_size < length: # length = 3000
        data += cli.recv(1024)
        recv_size = len(data)

    print(data.decode('utf-8'))
